"""``atomic eval``: run a task set through a server and score the model by pass@k.

``formats`` reads HumanEval, MBPP and Atomic task files into :class:`~.formats.Task`;
``estimator`` is the unbiased pass@k; ``results`` is the resumable results file;
``runner`` drives the jobs; ``report`` prints progress and tables and ``chart`` draws
the pass@k chart.
"""
