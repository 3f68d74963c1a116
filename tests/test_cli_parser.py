"""The command registry's parser is a pure function: argv in, (command, args) out,
or a CliError / CliHelp — never an exit, never a print, no cluster needed."""

from __future__ import annotations

import io

import pytest

from kbox.cli.registry import (
    COMMANDS,
    CliError,
    CliHelp,
    Context,
    execute,
    help_text,
    names,
    parse,
    parser_for,
)

KUBECTL_VERBS = ["get", "describe", "apply", "create", "replace", "delete", "scale", "rollout",
                 "set", "logs", "exec", "label", "annotate", "cordon", "uncordon", "drain", "wait",
                 "top", "events", "api-resources", "version"]
KBOX_VERBS = ["node", "up", "down", "status", "run"]


def test_every_verb_is_registered():
    for verb in KUBECTL_VERBS + KBOX_VERBS:
        assert verb in names(), verb


def test_every_parser_builds_and_has_help():
    for name in names():
        cmd = COMMANDS[name]
        assert cmd.help, name
        p = parser_for(cmd)
        assert p.format_help().startswith(f"usage: kbox {name}")


def test_get_flags():
    cmd, args = parse(["get", "pods", "-o", "wide", "-l", "app=web", "-n", "shop", "--no-headers"])
    assert cmd.name == "get"
    assert args.output == "wide" and args.selector == "app=web" and args.namespace == "shop"
    assert args.no_headers is True


def test_parse_accepts_a_line_and_strips_kubectl_prefix():
    cmd, args = parse("kubectl get deploy,rs -A")
    assert cmd.name == "get" and args.all_namespaces is True
    cmd, args = parse("kbox scale deploy/web --replicas=5")
    assert cmd.name == "scale" and args.replicas == 5


def test_quoted_jsonpath_survives_the_split():
    _, args = parse("""get pods -o jsonpath='{range .items[*]}{.metadata.name}{"\\n"}{end}'""")
    assert args.output == 'jsonpath={range .items[*]}{.metadata.name}{"\\n"}{end}'


def test_double_dash_tail_is_passed_through():
    cmd, args = parse(["exec", "web-abc", "-c", "web", "--", "ls", "-l", "/"])
    assert cmd.name == "exec" and args.command_args == ["ls", "-l", "/"]
    _, args = parse(["create", "job", "j", "--image=busybox", "--", "echo", "--not-a-flag"])
    assert args.command_args == ["echo", "--not-a-flag"]


def test_unknown_command_has_a_hint():
    with pytest.raises(CliError) as e:
        parse(["gte", "pods"])
    assert e.value.message.startswith('unknown command "gte" for "kbox"')
    assert "Did you mean this?\n\tget" in e.value.message
    assert e.value.code == 1


def test_unknown_command_without_a_close_match():
    with pytest.raises(CliError) as e:
        parse(["zzzzqqq"])
    assert e.value.message == 'unknown command "zzzzqqq" for "kbox"'


def test_unknown_flag():
    with pytest.raises(CliError) as e:
        parse(["get", "pods", "--bogus"])
    assert e.value.message == "unknown flag: --bogus"
    with pytest.raises(CliError) as e:
        parse(["get", "pods", "--bogus=1"])
    assert e.value.message == "unknown flag: --bogus"


def test_bad_flag_value_is_a_clear_error():
    with pytest.raises(CliError) as e:
        parse(["scale", "deploy/web", "--replicas=many"])
    assert "replicas" in e.value.message and "many" in e.value.message


def test_flags_are_not_abbreviated():
    with pytest.raises(CliError):
        parse(["get", "pods", "--all-names"])


def test_help_is_raised_not_printed(capsys):
    with pytest.raises(CliHelp) as e:
        parse(["get", "--help"])
    assert "usage: kbox get" in e.value.text
    assert capsys.readouterr().out == ""
    with pytest.raises(CliHelp) as e:
        parse([])
    assert "get" in e.value.text and "Display one or many resources" in e.value.text


def test_help_text_lists_every_command():
    text = help_text()
    for name in names():
        assert name in text


def test_bad_quoting():
    with pytest.raises(CliError) as e:
        parse("get pods -l 'app=web")
    assert "cannot parse" in e.value.message


def test_execute_reports_errors_on_ctx_streams(capsys):
    ctx = Context(client=None, out=io.StringIO(), err=io.StringIO())
    assert execute(ctx, "frobnicate") == 1
    assert ctx.err.getvalue().startswith('error: unknown command "frobnicate" for "kbox"')
    assert execute(ctx, "get pods --bogus") == 1
    assert "error: unknown flag: --bogus\n" in ctx.err.getvalue()
    assert execute(ctx, "get --help") == 0
    assert "usage: kbox get" in ctx.out.getvalue()
    assert capsys.readouterr() == ("", "")


def test_main_unknown_command_exit_code(capsys):
    from kbox.cli import main
    assert main(["frobnicate"]) == 1
    err = capsys.readouterr().err
    assert 'unknown command "frobnicate" for "kbox"' in err


def test_main_without_cluster(tmp_path, monkeypatch, capsys):
    from kbox.cli import main
    monkeypatch.setenv("KBOX_HOME", str(tmp_path))
    monkeypatch.delenv("KBOX_CLUSTER", raising=False)
    assert main(["get", "pods"]) == 1
    assert 'kbox: no running cluster "kbox" (start one with: kbox up)' in capsys.readouterr().err


def test_cli_does_not_import_textual():
    import subprocess
    import sys
    code = "import sys, kbox.cli; kbox.cli.registry.load_commands(); print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
