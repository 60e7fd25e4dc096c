"""Key handling: instance keys, the keyring, the registry of everything
encrypted, rotation and retirement, and the blob check.

Deliberately empty of imports: submodules sit at different layers (the
registry is imported by models, rotation reads the database), so importing
the package must not pull any of them in.
"""
