"""libaci: podkit's image library.

Everything podkit knows about images lives here: references and appc names,
digests and descriptors, OCI / Docker / appc manifests and their schemas, the
on-disk store, layer extraction and rendering.  It is pure: no subprocesses,
no global mutable state, no ``sys.exit``; failures are raised as
:class:`libaci.errors.PodkitError` subclasses and the commands in ``bin/``
turn them into exit codes.
"""
