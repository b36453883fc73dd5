"""The declared protocol between the controller and the agent.

Standard library only.  It is shipped to the target with the agent (as the
top-level package ``protocol``, next to agent.py) and imported by the
controller as ``remote.protocol``.  It is the one thing the two sides share:
the agent imports nothing of the controller's, and the controller imports
nothing of the agent's but this.

Messages are one JSON object per line (remote/agent/agent.py says which ops
there are); PROTOCOL is the version both sides announce.
"""
PROTOCOL = 1
