"""`p2psync open`: the web interface's address, opened in a browser already signed in."""

from __future__ import annotations

import webbrowser

import click

from .support import Context


@click.command("open")
@click.option("--no-browser", is_flag=True, help="Only print the address and a sign-in link.")
@click.pass_obj
def open_web(obj: Context, no_browser: bool) -> None:
    """Open the web interface (served by the running daemon) in a browser.

    The link carries a one-time sign-in ticket (valid two minutes); afterwards sign in
    with the API key in <home>/api.key.
    """
    client = obj.need_daemon()
    url = f"http://{client.address}/"
    link = url.rstrip("/") + client.post("/api/web/signin-link")["path"]
    click.echo(f"Web interface: {url}")
    click.echo(f"Sign in with the API key in {obj.home / 'api.key'}, or open this once:")
    click.echo(f"  {link}")
    if not no_browser and not webbrowser.open(link):
        click.echo("(no browser found here: open the link above yourself)")


@click.command("web-password")
@click.option("--clear", is_flag=True, help="Remove the password (the API key still works).")
@click.pass_obj
def web_password(obj: Context, clear: bool) -> None:
    """Set (or --clear) a password for signing in to the web interface.

    Stored as a scrypt hash in <home>/web.password (0600); takes effect at once.
    """
    if clear:
        obj.offline.set_web_password(None)
        click.echo("Web password removed; sign in with the API key.")
        return
    password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    obj.offline.set_web_password(password)
    click.echo(f"Web password set ({obj.home / 'web.password'}).")
