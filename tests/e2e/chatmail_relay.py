"""A chatmail relay's files as chatmail relay's own tooling lays them out,
for the tests of `--config` and of the switch from chatmail relay's Python
services (docs/operator-relay.md, "Switching a chatmail relay ...").

What is mimicked, from chatmail/relay's sources (chatmaild/src/chatmaild/
config.py, ini/chatmail.ini.f, metadata.py, notifier.py, filedict.py,
user.py; cmdeploy/src/cmdeploy/basedeploy.py):

- /usr/local/lib/chatmaild/chatmail.ini: `cmdeploy init` fills the
  template's {mail_domain}, strips every line, writes each key line as
  `name = value` with the given overrides, and appends overrides the
  template does not have. CHATMAIL_INI_TEMPLATE has the template's keys,
  in its order, commented as it comments them (the comments shortened).
- <mailboxes_dir> = /home/vmail/mail/<mail_domain>: one directory per
  address with its Maildir, `password` and, once a device set a token,
  `metadata.json` ({"devicetoken": {token: unix seconds}} as json.dump
  writes it; relays before 1.7: a list) beside its `metadata.json.lock`;
  `pending_notifications/<uuid hex>` holds one queued push each,
  "<addr>\\n<start unix seconds>\\n<token>".

The tree lives under a temp dir `root`, so /home/vmail/... is
<root>/home/vmail/...
"""

import hashlib
import json
import os
import uuid

CHATMAIL_INI_RELPATH = "usr/local/lib/chatmaild/chatmail.ini"

CHATMAIL_INI_TEMPLATE = """\
[params]

# the relay's fully qualified domain name (required)
mail_domain = {mail_domain}

#
# Nothing below needs changing for a private test relay
#

#
# Limits on addresses
#

# mails an address may send per minute
#max_user_send_per_minute = 60

# burst allowed above that rate
#max_user_send_burst_size = 10

# mailbox size (the oldest mails are removed past it)
#max_mailbox_size = 500M

# largest mail, in bytes
#max_message_size = 31457280

# days after which mails are deleted
#delete_mails_after = 20

# days after which large mails are deleted
#delete_large_after = 7

# days without login after which an address is deleted
#delete_inactive_users_after = 90

# user name and password lengths
#username_min_length = 9
#username_max_length = 9
#password_min_length = 9

#
# Limits of the machine (new addresses are refused past them)
#

#max_load_1m = 5
#min_available_memory = 200M
#min_free_disk_space = 1G
#max_imap_connections = 10000
#max_smtp_connections = 1000

# certificates managed elsewhere instead of acmetool: CERT KEY
# tls_external_cert_and_key = /path/to/fullchain.pem /path/to/privkey.pem

# web pages to publish
#www_folder = www

#
# Deployment
#

#disable_ipv6 = False

# contact address for the ACME account
#acme_email =

# unset: the relay runs its own iroh relay and announces it;
# a URL: announce that one instead; empty: announce none
# iroh_relay =

# address of the mtail metrics listener (not public)
# mtail_address = 127.0.0.1

#
# Debugging
#

#imap_rawlog = false
#imap_compress = false

#
# Privacy policy contacts
#

privacy_postal =

privacy_mail =

privacy_pdo =

privacy_supervisor =
"""

# The keys a fresh chatmail.ini sets (uncommented in the template).
TEMPLATE_KEYS = ("mail_domain", "privacy_postal", "privacy_mail",
                 "privacy_pdo", "privacy_supervisor")


def chatmail_ini_text(mail_domain, **overrides):
    """chatmail.ini as `cmdeploy init` writes it, with overrides
    (name=value) applied as it applies them."""
    extra = dict(overrides)
    lines = []
    for line in CHATMAIL_INI_TEMPLATE.format(
            mail_domain=mail_domain).split("\n"):
        line = line.strip()
        if line and line[0] not in "#[":
            name, value = (s.strip() for s in line.split("=", 1))
            value = extra.pop(name, value)
            line = "%s = %s" % (name, value)
        lines.append(line)
    for name, value in extra.items():
        lines.append("%s = %s" % (name, value))
    return "\n".join(lines)


class ChatmailRelayTree:
    """A relay's chatmail.ini and chatmaild's mail store under `root`."""

    def __init__(self, root, mail_domain="example.org", **ini_overrides):
        self.root = root
        self.mail_domain = mail_domain
        self.ini_path = os.path.join(root, CHATMAIL_INI_RELPATH)
        self.vmail = os.path.join(root, "home/vmail/mail", mail_domain)
        self.queue_dir = os.path.join(self.vmail, "pending_notifications")
        os.makedirs(os.path.dirname(self.ini_path), exist_ok=True)
        os.makedirs(self.queue_dir, exist_ok=True)
        self.write_ini(**ini_overrides)

    def write_ini(self, **overrides):
        with open(self.ini_path, "w") as f:
            f.write(chatmail_ini_text(self.mail_domain, **overrides))
        return self.ini_path

    def add_user(self, addr, tokens=None, password="$6$x$y"):
        """An address with its Maildir and password; tokens: {token:
        unix seconds} (relay 1.7 and later) or [token, ...] (before), as
        chatmaild's metadata.json holds them; None: no device yet."""
        home = os.path.join(self.vmail, addr)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(home, sub), exist_ok=True)
        with open(os.path.join(home, "password"), "w") as f:
            f.write(password)
        if tokens is not None:
            with open(os.path.join(home, "metadata.json"), "w") as f:
                json.dump({"devicetoken": tokens}, f)
            open(os.path.join(home, "metadata.json.lock"), "w").close()
        return home

    def add_pending(self, addr, start_ts, token):
        """One push chatmaild still had to send."""
        path = os.path.join(self.queue_dir, uuid.uuid4().hex)
        with open(path, "w") as f:
            f.write("%s\n%d\n%s" % (addr, start_ts, token))
        return path

    def snapshot(self):
        """{relative path: sha256} of every file of the tree: chatmaild's
        state must come out of the switch as it went in, so that
        switching back finds it."""
        out = {}
        for d, _, files in os.walk(self.root):
            for name in files:
                p = os.path.join(d, name)
                with open(p, "rb") as f:
                    out[os.path.relpath(p, self.root)] = hashlib.sha256(
                        f.read()).hexdigest()
        return out
