"""The proxy: route table (pure), Caddy config (pure), the proxy container, the controller, the watcher."""
