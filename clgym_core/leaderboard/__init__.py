"""The leaderboard: tuned results per benchmark and algorithm, their provenance, and a static site.

``board.yaml`` defines the entries (:mod:`.board`); ``clgym leaderboard plan`` writes one tune
file per entry, ``clgym tune`` runs each, ``collect`` keeps the small results and the chosen
specs (:mod:`.collect`), ``add`` checks and adds further runs (:mod:`.add`), and ``build``
makes a site that opens from disk (:mod:`.site`).
"""
