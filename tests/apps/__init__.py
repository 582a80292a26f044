"""Apps served by real gunicorn processes in the tests."""
