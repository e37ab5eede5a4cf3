"""The offline engine: dlib's models in worker processes.

``vision`` does the CPU work, ``measure`` turns it into the typed results (and
documents every 0-100 formula), ``pool`` runs it off the event loop. The provider the
bot talks to is ``services.providers.local.LocalProvider``.
"""

from typing import Final

NAME: Final = "local"
"""The offline engine's provider name: in settings, usage records, logs and replies."""
