"""What a child process killed at a named step defines first: ``die`` (SIGKILL, no cleanup)
and ``before``/``after`` to patch a function so that the child dies around its call. The
crash tests (the audit outbox, an upgrade, ingests, backups and restores) prepend it to their
child's script, run with ``python -c``."""

HOOKS = r'''
import os, signal

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def after(owner, name, when=lambda *a, **k: True):
    original = getattr(owner, name)
    def patched(*args, **kwargs):
        result = original(*args, **kwargs)
        if when(*args, **kwargs):
            die()
        return result
    setattr(owner, name, patched)

def before(owner, name, when=lambda *a, **k: True):
    original = getattr(owner, name)
    def patched(*args, **kwargs):
        if when(*args, **kwargs):
            die()
        return original(*args, **kwargs)
    setattr(owner, name, patched)
'''
