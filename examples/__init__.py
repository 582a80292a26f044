"""Example applications for flask_wamp_bridge (``examples.app:app``)."""
