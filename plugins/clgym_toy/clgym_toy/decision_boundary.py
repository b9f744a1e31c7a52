from clgym_core.callback import Callback
class DecisionBoundary(Callback):
    """wip"""
    name = "decision_boundary"
