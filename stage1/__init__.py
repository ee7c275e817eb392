"""stage1 flavours, each in its own folder behind the documented ABI (podkit-stage1(7))."""
