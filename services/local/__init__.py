"""The offline face engine: dlib's models in worker processes.

``engine`` does the CPU work, ``measure`` turns it into the typed results (and
documents every 0-100 formula), ``pool`` runs it off the event loop. The provider the
bot talks to is ``services.providers.local.LocalEngine``.
"""
