"""A replica of finews.withounder.com: synthetic posts, the pages Jekyll makes of them, and a
local HTTP server that serves them like GitHub Pages, for testing the crawler offline."""

from replica.posts import Post, generate_posts
from replica.render import render_site
from replica.server import ReplicaServer

__all__ = ["Post", "ReplicaServer", "generate_posts", "render_site"]
