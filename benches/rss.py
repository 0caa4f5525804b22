"""Peak RSS of the provider processes Terraform starts: a wrapper put in
place of the provider (through dev_overrides) records each process's
ru_maxrss. Shared by the benchmark scripts in this directory."""
import os

WRAPPER = """#!/usr/bin/env python3
import os, resource, subprocess, sys
code = subprocess.call([{real!r}] + sys.argv[1:])
with open({log!r}, "a") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) + "\\n")
sys.exit(code)
"""


def workspace(work, binary, source, name):
    """Prepares `work` so that Terraform run there starts `binary` for
    `source` through the wrapper; returns the environment to run it with
    and the log of peak RSS values (KiB, one line per process)."""
    plugin_dir = os.path.join(work, "plugins")
    os.makedirs(plugin_dir, exist_ok=True)
    log = os.path.join(work, "rss.log")
    wrapper = os.path.join(plugin_dir, f"terraform-provider-{name}")
    with open(wrapper, "w") as f:
        f.write(WRAPPER.format(real=binary, log=log))
    os.chmod(wrapper, 0o755)
    rc = os.path.join(work, "terraformrc")
    with open(rc, "w") as f:
        f.write('provider_installation {\n  dev_overrides {\n    "%s" = "%s"\n  }\n  direct {}\n}\n' % (source, plugin_dir))
    env = dict(os.environ, TF_CLI_CONFIG_FILE=rc, CHECKPOINT_DISABLE="1", HOME=work)
    return env, log


def peak_kib(log):
    """The largest value in the log, which is then emptied."""
    values = [int(v) for v in open(log).read().split()]
    open(log, "w").close()
    return max(values) if values else 0
