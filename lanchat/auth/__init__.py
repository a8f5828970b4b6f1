"""Who may join a room with a password, and who may moderate it (docs/protocol.md, "Logging in").

    secrets.py   the relay's verifiers (room password, operator password, operator token), one
                 salt for all; reading a password file; the operator token's file
    attempts.py  wrong passwords per address within a window, and the lock that follows
    login.py     Gate (the relay's policy) and Login, one connection's conversation before it
                 joins, sans-IO: lines in, frames and an outcome out

Only verifiers are kept after start (lanchat/protocol/scram.py): the relay can check a password
but could not tell anyone what it is. The connection's reader thread runs the conversation
(lanchat/connection.py); the socket is its own until the client joins.
"""
