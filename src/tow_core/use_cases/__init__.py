"""Use case objects: one method per operation a front door offers (see ``tow_core.unit_of_work``).

Each object is built once by the composition root (``tow_http.bootstrap``) with the ports it needs. A method
takes the acting credential and plain inputs, opens its own unit of work, checks membership and permission
through the rules in the area modules (``tow_core.docs``, ``tow_core.knowledge`` ...), and returns plain
domain values, fully read before the unit of work ends.
"""
