"""The proxy on one host: its Caddy config from a route table (pure), the listener setting, the proxy container, the controller, the watcher."""
