"""What every command-line program does with an error the user can act on: one line on stderr naming the
input and the problem (`<program>: error: ...`), a non-zero exit code, no traceback and no help text.

    exit 2  bad input (a missing or malformed file, a config typo, an unknown joint, a refused model)
    exit 3  a run stopped for a stated reason (`RunStopped`: e.g. the loss diverged)

`run(main, program)` replaces `absl.app.run(main)`. Set KPT_TF_TRACEBACK=1 to get the traceback as well.
TensorFlow's Python INFO log (absl's default level under `app.run`) is hidden unless `--verbosity` is given: an
export printed ~24 KB of it, mostly three lines listing hundreds of captured-variable ids.
"""

from __future__ import annotations

import errno
import os
import re
import sys

BAD_INPUT_EXIT_CODE = 2
RUN_STOPPED_EXIT_CODE = 3


class RunStopped(RuntimeError):
    """A run that stopped itself for a reason its message states (nothing already written was lost)."""


# Errors the library raises with a message naming the input: ValueError (malformed, refused), OSError
# (missing, unreadable, unwritable, disk full).
BAD_INPUT_ERRORS = (ValueError, OSError)
# A full disk (ENOSPC), a file size limit (EFBIG) or a quota (EDQUOT).
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def fail(program: str, message: str, code: int = BAD_INPUT_EXIT_CODE, skip_teardown: bool = False):
    print(f"{program}: error: {message}", file=sys.stderr)
    if skip_teardown:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


class _Signalled(KeyboardInterrupt):
    """SIGTERM turned into the same unwinding as Ctrl-C (finally blocks run, staged files are cleaned up)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_on_signal(signum, frame):
    raise _Signalled(signum)


def run(main, program: str) -> None:
    """`absl.app.run(main)`, with user errors turned into a message and an exit code. Ctrl-C (SIGINT) and SIGTERM
    stop it the same way: one line, exit 128 + the signal number (130, 143), no traceback; every writer here writes
    atomically, so a rerun of the same command resumes or redoes the work. A SIGTERM the parent passed on ignored
    stays ignored, as Python keeps an ignored SIGINT: whoever started the program chose that."""
    import signal

    from absl import app

    if threading_is_main() and signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):   # a program's own wins
        signal.signal(signal.SIGTERM, _raise_on_signal)

    def guarded(argv):
        from absl import flags
        from absl import logging as absl_logging

        if not flags.FLAGS["verbosity"].present:    # TF logs through absl and through Python's root logger
            absl_logging.set_verbosity(absl_logging.WARNING)
        try:
            return main(argv)
        except KeyboardInterrupt as e:
            if os.environ.get("KPT_TF_TRACEBACK"):
                raise
            signum = getattr(e, "signum", signal.SIGINT)
            fail(program, f"stopped by {signal.Signals(signum).name}; rerun the same command to resume",
                 128 + int(signum))
        except RunStopped as e:
            if os.environ.get("KPT_TF_TRACEBACK"):
                raise
            fail(program, str(e), RUN_STOPPED_EXIT_CODE)
        except BAD_INPUT_ERRORS as e:
            if os.environ.get("KPT_TF_TRACEBACK"):
                raise
            # Measured (h5py 3, HDF5): the handle of an .h5 file whose write failed segfaults when the
            # interpreter collects it at exit, turning exit 2 into a crash: after a full disk, exit without it.
            fail(program, describe(e), skip_teardown=getattr(e, "errno", None) in DISK_FULL_ERRNOS)

    try:
        app.run(guarded)
    except (AttributeError, KeyError) as e:
        from absl import flags

        if flags.FLAGS.is_parsed() or os.environ.get("KPT_TF_TRACEBACK"):
            raise
        fail(program, unknown_config_key(e, sys.argv[1:]))
    except Exception as e:  # anything a --config file raises while absl parses the flags
        from absl import flags

        message = config_file_error(e, sys.argv[1:])
        if flags.FLAGS.is_parsed() or os.environ.get("KPT_TF_TRACEBACK") or message is None:
            raise
        fail(program, message)


CONFIG_FILE_HINT = "--config takes an ml_collections Python file whose get_config() returns the config"


def config_file_error(error: BaseException, argv) -> str | None:
    """One line for a `--config` file that does not parse (a YAML or JSON file, a syntax error) or raises while it is
    loaded: the file, the line, the error and what --config takes; None for an error that is not the config's."""
    paths = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    paths += [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
    paths = [p.split(":", 1)[0] for p in paths]
    if isinstance(error, SyntaxError) and error.filename and any(
            os.path.realpath(error.filename) == os.path.realpath(p) for p in paths):
        kind = os.path.splitext(error.filename)[1].lower()
        what = {".yaml": "a YAML file, which Python cannot parse", ".yml": "a YAML file, which Python cannot parse",
                ".json": "a JSON file, which Python cannot parse"}.get(kind, "a Python syntax error")
        return f"{error.filename}:{error.lineno}: {what} ({error.msg}); {CONFIG_FILE_HINT}"
    where = _config_file_line(error, argv)
    if where:
        return f"{where}: the config file raised {type(error).__name__}: {error}; {CONFIG_FILE_HINT}"
    return None


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def unknown_config_key(error: BaseException, argv) -> str:
    """ml_collections raises AttributeError/KeyError while absl parses the flags when a key the config does not
    have is set: by an override (`--config.train.lernrate=1`; name the flag) or inside the config file itself
    (`c.train.epocs = 3` on the locked base config; name the file and line)."""
    text = str(error.args[0] if error.args else error)
    key = re.search(r'Key "(\w+)" does not exist', text) or re.search(r"(\w+)", text)
    key = key.group(1) if key else "?"
    hint = re.search(r"Did you mean [^?]*\?", text)
    hint = f" ({hint.group(0)})" if hint else ""
    where = _config_file_line(error, argv)
    if where:
        return f"{where}: the config has no key {key!r}; a config file cannot add keys by assignment{hint}"
    flag = next((a.split("=")[0] for a in argv if a.startswith("--") and key in a), "a --config override")
    return f"{flag}: the config has no key {key!r}; override refused{hint}"


def _config_file_line(error: BaseException, argv) -> str | None:
    """`path:line` of the innermost traceback frame in the `--config` file, if the error was raised there."""
    paths = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    paths += [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
    targets = {os.path.realpath(p.split(":", 1)[0]): p.split(":", 1)[0] for p in paths}
    found = None
    tb = error.__traceback__
    while tb is not None:
        name = os.path.realpath(tb.tb_frame.f_code.co_filename)
        if name in targets:
            found = f"{targets[name]}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def describe(error: BaseException) -> str:
    """The message of an error, with the file name an OSError carries when its text does not say it."""
    text = str(error)
    filename = getattr(error, "filename", None)
    if isinstance(error, OSError) and filename and str(filename) not in text:
        text = f"{filename}: {error.strerror or text}"
    elif isinstance(error, OSError) and not filename and error.errno and error.strerror:
        text = error.strerror   # OSError(errno, message) from the library: the message names the file already
    return text
