"""Reusable console widgets: the lazy post table, the image preview, the post detail, the status bar."""
