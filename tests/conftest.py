pytest_plugins = ["flask_wamp_bridge.testing", "leakcheck"]
