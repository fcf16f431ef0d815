"""The pipelines behind every command: append, copy, inspect, verify, and their outputs.

Each pipeline has two phases.  ``plan_*`` checks every input and every
destination (bad input: exit 2, nothing read or written) and proves push
access to every registry destination (a refusal: exit 1, nothing written
anywhere); ``Plan.run()`` then reads, builds and writes, and its ``outputs``
remember which destinations were written if it stops part-way.  The command
line only parses arguments into requests and prints outcomes.

Layering: above ``trust`` (signing) and below ``app`` (the export uses these).
"""
