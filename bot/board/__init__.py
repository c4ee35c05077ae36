"""The leaders' board: the whole plan on one web page, served by `duban run` under /board.

`auth` signs people in from chat (one-time links, sessions), `queries` reads what the pages
show (the same item views as the digest), `rendering` turns it into HTML, `routes` serves it.
Read-only: nothing on the board changes the plan.
"""
