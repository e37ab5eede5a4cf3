"""The pictures sent with a reply: the check drawn on the photo, numbered faces, a compare."""
