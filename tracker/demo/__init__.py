"""The sample behind ``tracker demo``: a story (``plan``) and its telling (``feed``).

``plan`` decides, without I/O, which campaigns go to whom and what each person
does; ``feed`` sends it all to a running tracker through the tracker's own API,
edge and landing code. The command itself is ``tracker.cli.demo``.
"""
