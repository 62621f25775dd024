"""autograd.inspect: the tools that watch the core compute. None of them changes a number.

Each builds on the core (``autograd/*.py``) and imports nothing else of the project; the core imports none of
them. Those that watch every op are function hooks, the core's one hook point (``autograd/hooks.py``); the
others read what the core already keeps (see docs/inspection.md):

* ``trace.py``: backward one op at a time (``backward_steps``, driving ``engine.iter_backward``), gradient
  statistics (``grad_stats``) and the printed trace (``trace``);
* ``graph.py``: the graph behind a tensor as Graphviz DOT text or a picture (``to_dot``, ``render``, ``draw``);
* ``anomaly.py``: anomaly mode (``detect_anomaly``), a hook that stops at the first NaN or Inf and names the
  op and the user's line that created it;
* ``print_hook.py``, ``timer_hook.py``, ``memory_hook.py``: ``PrintHook``, ``TimerHook``, ``MemoryHook``.

``autograd`` re-exports their public names (``autograd.trace``, ``autograd.graph.render``,
``autograd.detect_anomaly``, ``autograd.PrintHook``, ...); this package itself only holds the modules.
"""
