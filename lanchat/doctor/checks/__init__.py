"""The checks, one module per concern: server (server.bind), lan (lan.address), virtual
(env.virtualized), peer (client mode), mdns (discovery), nat (--internet), and firewall, which
runs the firewall face of this OS (lanchat.doctor.firewall)."""
