"""``python -m visiona_storage``: the ``visiona-storage`` command."""

from .cli import main

raise SystemExit(main())
