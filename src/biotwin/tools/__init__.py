"""What a user runs: the ``biotwin`` command line, the notebook runner, training checks, the PyNumero build."""
