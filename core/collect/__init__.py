"""Collecting posts (floor 4): 4chan's API, the archive, images and videos, import and export, the old scraper's
database. May import floors 0-3 (errors, labels, config, store). Import and export (transfer, export) carry
human labels, so they sit on floor 7 with core.label and may import it.
"""
