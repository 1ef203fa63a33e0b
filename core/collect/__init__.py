"""Collecting posts: 4chan's API, images and videos, import and export, the old scraper's database."""
