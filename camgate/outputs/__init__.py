"""camgate's outputs: one folder each (its `MediaSink` and pure logic), fed through the seam in
``camgate.outputs.sink``. HTTP routes for them live in ``camgate.api.outputs``."""
