"""The built-in agent policy, as TOML; docs/policy.md shows exactly this text."""

DEFAULT_TOML = """\
# toolkit agent policy: the built-in defaults.
# A key you set in agent.toml replaces the value below; a key you leave out keeps it.

[files]
# Read-only diagnostics. Matching is on the real path of the opened file.
allow = [
    "/etc/os-release",
    "/usr/lib/os-release",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/fstab",
    "/var/log/syslog",
    "/var/log/messages",
    "/var/log/dmesg",
    "/var/log/*.log",
    "/proc/loadavg",
    "/proc/meminfo",
    "/proc/cpuinfo",
    "/proc/uptime",
    "/proc/version",
]
# Deny beats allow.
deny = [
    # SSH keys and configuration, private keys and certificate stores anywhere
    "~/.ssh/**",
    "/etc/ssh/ssh_host_*_key",
    "**/id_*",
    "**/*.key",
    "**/*.pem",
    "**/*.p12",
    "**/*.pfx",
    "**/*.jks",
    "**/*.keystore",
    "**/*.kdbx",
    # password stores, keyrings and credential files
    "~/.gnupg/**",
    "~/.password-store/**",
    "~/.local/share/keyrings/**",
    "~/.local/share/kwalletd/**",
    "~/.pki/**",
    "~/.netrc",
    "~/.git-credentials",
    "~/.aws/**",
    "~/.azure/**",
    "~/.config/gcloud/**",
    "~/.kube/**",
    "~/.docker/config.json",
    "~/.*_history",
    # browser and mail profiles
    "~/.mozilla/**",
    "~/.thunderbird/**",
    "~/.config/google-chrome/**",
    "~/.config/chromium/**",
    "~/.config/BraveSoftware/**",
    "~/.config/microsoft-edge/**",
    "~/.config/vivaldi/**",
    "~/.config/opera/**",
    "~/snap/firefox/**",
    "~/.var/app/*/.mozilla/**",
    "~/.var/app/*/config/google-chrome/**",
    "~/.var/app/*/config/chromium/**",
    # toolkit's own configuration, keys and transcripts
    "~/.config/toolkit/**",
    "~/.local/share/toolkit/**",
    "~/.local/state/toolkit/**",
    # system secrets
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/security/opasswd",
    # process memory and environment (the agent's own included)
    "/proc/*/environ",
    "/proc/*/mem",
    "/proc/*/task/*/environ",
    "/proc/*/task/*/mem",
    "/proc/kcore",
]
max_bytes = 10485760      # 10 MiB
allow_hardlinks = false

[commands]
diagnostics = [
    ["uptime"],
    ["df", "-h"],
    ["free", "-m"],
    ["uname", "-a"],
    ["systemctl", "status", "{unit}"],
    ["systemctl", "--failed"],
    ["journalctl", "-u", "{unit}", "-n", "{lines}"],
    ["ip", "address"],
    ["ip", "route"],
    ["lsblk"],
]
# Absolute directories searched, in order, before /usr/sbin:/usr/bin:/sbin:/bin
# for the program of every command the agent runs (run, diag, fix).
search_path = []

[procedures]
# Diagnostics and fixes by name (globs); deny beats allow. Installed and brought alike.
allow = ["*"]
deny = []
# Whether a technician may bring one this machine does not have (the customer approves it).
brought = true

[placeholders]
unit = "^[A-Za-z0-9@._-]{1,128}$"
lines = "^[0-9]{1,5}$"
"""
