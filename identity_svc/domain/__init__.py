"""The rules of identity_svc, pure Python and free of I/O: real-name data, accounts and channels, consent, closing.

Error messages name the field and the rule broken, never the value: personal data must not reach logs or clients.
"""
