"""The command line: ``wavemq-edge`` (:mod:`.main`, with the client commands in :mod:`.client_cmds`)
and ``wv`` (:mod:`.wv`, WAVE-lite entities, grants and proofs), with their exit codes defined once in
:mod:`.exit_codes`.

The top layer of the package: argument parsing, environment variables, printing. Nothing here is
imported by the rest of the package; this ``__init__`` imports nothing so that ``wv`` starts without
loading the router's client.
"""
