"""Every rank runs with the same settings, or the job refuses to start.

Each rank of an ``mpiexec`` job parses its own command line and reads its own environment. They are usually the
same, but need not be: ``mpiexec -n 1 prog --lr 0.1 : -n 1 prog --lr -1`` gives each rank its own flags, and
another machine (``-hosts a,b``) may export another ``MINCEPTION_KERNELS`` in its shell profile. Either way
goes wrong silently: where rank 0 alone decides (``Communicator.on_main``), the other ranks' settings are
ignored, unchecked; where each rank uses its own, the replicas compute different things and the averaged
gradient mixes them. ``agree_on_settings`` compares every rank's settings with every other's right after
start-up, so that a difference is one error, the same on every rank, naming the setting and the ranks.
"""
import os

from minception.files.shorten import shorten

#: environment variables that change what a run computes (the kernel tier, the data folder, the thread count);
#: ``environment_settings`` reads them for ``agree_on_settings``
RESULT_VARIABLES = ("MINCEPTION_KERNELS", "MINCEPTION_DATA", "OMP_NUM_THREADS")


class SettingsDisagree(ValueError):
    """The ranks of one job were started with different settings (the message names the first one)."""


def environment_settings(environ=None, names=RESULT_VARIABLES):
    """``{"$NAME": value or None}`` for each variable of ``names`` (``environ``: default ``os.environ``)."""
    environ = os.environ if environ is None else environ
    return {f"${name}": environ.get(name) for name in names}


def agree_on_settings(comm, settings):
    """Check that every rank of ``comm`` holds the same ``settings``; return them.

    Args:
        comm: the job's communicator; every rank must call this at the same point (it is a collective).
        settings: setting name -> value, e.g. ``{"--lr": 0.02, "$MINCEPTION_KERNELS": None}``. Values are
            compared by type and ``repr`` (so ``nan`` equals ``nan``), a name missing on some ranks counts as
            "not given" there. The names are quoted as they are in the message.

    Raises:
        SettingsDisagree (a ValueError) on every rank, with the same one-line message, when any setting differs.
    """
    if comm.size == 1:
        return settings
    everyone = comm.allgather_object(dict(settings))
    differing = [name for name in _names_in_order(everyone)
                 if len({_key(theirs.get(name, _NOT_GIVEN)) for theirs in everyone}) > 1]
    if differing:
        name = differing[0]
        groups = {}                            # comparison key -> (value, [ranks]), in order of first rank
        for rank, theirs in enumerate(everyone):
            value = theirs.get(name, _NOT_GIVEN)
            groups.setdefault(_key(value), (value, []))[1].append(rank)
        held = ", ".join(f"{_show(value)} on {_ranks(ranks)}" for value, ranks in list(groups.values())[:2])
        held += f", {len(groups) - 2} other value{'s' if len(groups) > 3 else ''}" if len(groups) > 2 else ""
        more = len(differing) - 1
        more = f" (and {more} more setting{'s' if more > 1 else ''})" if more else ""
        raise SettingsDisagree(f"{name} differs between the processes: {held}{more}")
    return settings


_NOT_GIVEN = object()          # the value of a setting that a rank does not have


def _names_in_order(everyone):
    """The setting names of all ranks: rank 0's in their order, then the others' new ones."""
    names = {}
    for theirs in everyone:
        names.update(dict.fromkeys(theirs))
    return list(names)


def _key(value):
    """What is compared: the type and the text (``repr``: exact for floats, and nan equals nan)."""
    if value is _NOT_GIVEN:
        return ("not given",)
    try:
        return (type(value).__name__, repr(value))
    except Exception:                          # noqa: BLE001 -- a value whose repr fails: compared by type only
        return (type(value).__name__, "<unprintable>")


def _show(value):
    if value is _NOT_GIVEN:
        return "not given"
    if value is None:
        return "unset"
    return shorten(value, width=24)


def _ranks(ranks):
    """Ranks in words: ``rank 3``, or ``ranks 0-2, 5`` (consecutive ones as a range), at most 6 pieces."""
    pieces, start = [], ranks[0]
    for previous, rank in zip(ranks, ranks[1:] + [None]):
        if rank != previous + 1:
            pieces.append(str(start) if start == previous else f"{start}-{previous}")
            start = rank
    text = ", ".join(pieces[:6]) + (", ..." if len(pieces) > 6 else "")
    return f"rank{'s' if len(ranks) > 1 else ''} {text}"
