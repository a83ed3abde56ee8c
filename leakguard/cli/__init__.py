"""The privacy suite's commands, on image sets and matchers: `audit` (audit.py) and `matcher`
(matcher.py). Each is a module with `add_arguments(parser)` and `run(args)`; the `leakguard` command
hub (training.cli) lists them beside the training commands, and adds to `audit` the option of
sampling a generator instead of reading a folder of images.
"""
