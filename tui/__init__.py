"""The Textual console (floor 9): the app, its screens and widgets, workers that run the engine's reads and jobs off
the event loop. It asks the engine (core, jobs) and draws; no business rule lives here. May import floors 0-8;
never the command line.
"""
