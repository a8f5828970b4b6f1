"""TLS on the relay's own port, trusted on first use: the only package that imports
`cryptography`.

fingerprint.py names a server's key the way people compare it (pure); identity.py makes and
keeps the relay's key and self-signed certificate (cryptography); certificates.py reads a
certificate a peer presented (cryptography); transport.py is TlsSocket, a socket-like object
over the standard library's ssl.SSLObject that a reader thread and the fan-out's writer use at
once, and the server's and the client's handshakes (standard library only); pins.py keeps the
client's known_servers file; trust.py decides whether a presented key is the one expected.

Importing this package loads nothing heavy: `cryptography` is imported only by the modules that
need it, and only `serve --tls` and a TLS join load them (docs/protocol.md, "TLS").
"""
