"""stage0: everything that runs around a stage1.

The podkit-* commands (``stage0.cli``), and — as the pod lifecycle lands —
pod directories and their state machine, rootfs mounts, stage1 selection and
invocation.  stage0 imports libaci; libaci never imports stage0.
"""
