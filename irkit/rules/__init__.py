"""The playbook's reasoning, pure: ``severity`` (classification), ``kinds`` (the kinds of finding),
``diagnosis`` (observations -> ranked findings), ``locks`` (the lock graph), ``plan`` (findings ->
the playbook's mitigations). No module here imports a client or does I/O.
"""
