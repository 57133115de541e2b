#!/usr/bin/env python3
"""Writes pgnoti(1) from the command tree ArgumentParser describes (`pgnoti --experimental-dump-help`).

    python3 packaging/manpage.py PATH/TO/pgnoti > pgnoti.1

One page, every subcommand a section, so `man pgnoti` is the whole reference. The same tree
drives `--help`, so the page cannot drift from the binary it was made from.
"""
import json
import subprocess
import sys


def esc(text):
    text = (text or "").replace("\\", "\\\\").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line.startswith((".", "'")) else line for line in text.split("\n"))


def synopsis(path, command):
    parts = [f"\\fB{esc(' '.join(path))}\\fR"]
    for arg in command.get("arguments", []):
        if not arg.get("shouldDisplay", True) or arg.get("names") and arg["preferredName"]["name"] in ("help", "version"):
            continue
        value = f"\\fI{esc(arg.get('valueName', ''))}\\fR"
        if arg["kind"] == "positional":
            item = value + ("..." if arg.get("isRepeating") else "")
        else:
            name = arg["preferredName"]
            flag = ("-" if name["kind"] == "short" else "--") + name["name"]
            item = f"\\fB{esc(flag)}\\fR" + ("" if arg["kind"] == "flag" else " " + value)
        parts.append(f"[{item}]" if arg.get("isOptional") else item)
    return " ".join(parts)


def options(command):
    out = []
    for arg in command.get("arguments", []):
        if not arg.get("shouldDisplay", True):
            continue
        if arg["kind"] == "positional":
            label = f"\\fI{esc(arg.get('valueName', ''))}\\fR"
        else:
            names = []
            for name in arg.get("names", []):
                names.append(("-" if name["kind"] == "short" else "--") + name["name"])
            label = ", ".join(f"\\fB{esc(n)}\\fR" for n in names)
            if arg["kind"] == "option":
                label += f" \\fI{esc(arg.get('valueName', ''))}\\fR"
        out.append(".TP\n" + label + "\n" + esc(arg.get("abstract", "")))
        if arg.get("defaultValue"):
            out[-1] += f" (default: {esc(arg['defaultValue'])})"
    return out


def walk(path, command, lines):
    for sub in command.get("subcommands", []):
        if not sub.get("shouldDisplay", True) or sub["commandName"] == "help":
            continue
        sub_path = path + [sub["commandName"]]
        lines.append(f".SS {esc(' '.join(sub_path))}")
        lines.append(synopsis(sub_path, sub))
        lines.append(".PP\n" + esc(sub.get("abstract", "")))
        if sub.get("discussion"):
            lines.append(".PP\n" + esc(sub["discussion"]))
        lines.extend(options(sub))
        walk(sub_path, sub, lines)


def main():
    dump = json.loads(subprocess.check_output([sys.argv[1], "--experimental-dump-help"]))
    root = dump["command"]
    version = subprocess.check_output([sys.argv[1], "--version"]).decode().strip()
    lines = [
        '.TH PGNOTI 1 "" "pgnoti ' + esc(version) + '" "User Commands"',
        ".SH NAME",
        "pgnoti \\- " + esc(root.get("abstract", "")),
        ".SH SYNOPSIS",
        "\\fBpgnoti\\fR \\fIsubcommand\\fR [\\fIoptions\\fR]",
        ".SH DESCRIPTION",
        esc("Every command takes --config like serve; without it, it uses the sandbox state under ./var. "
            "Times are ISO 8601 (Korean time without a zone) or a span back from now (30m, 2h, 7d). "
            "The full documentation is /usr/share/doc/pgnoti/README.md."),
        ".SH COMMANDS",
    ]
    walk(["pgnoti"], root, lines)
    lines += [
        ".SH FILES",
        ".TP\n/etc/pgnoti/pgnoti.toml\nConfiguration.",
        ".TP\n/etc/pgnoti/smartro\\-merchant\\-keys, /etc/pgnoti/*\\-path\\-secret\nSecrets, handed to the service as systemd credentials.",
        ".TP\n/var/lib/pgnoti/pgnoti.sqlite, /var/lib/pgnoti/queue/new/\nThe ledger and the queue directory consumers read.",
        ".SH EXIT STATUS",
        "0 on success, 78 for an invalid configuration, 1 otherwise.",
        ".SH SEE ALSO",
        "systemctl(1), journalctl(1)",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
