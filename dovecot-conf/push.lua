-- Dovecot push_notification Lua driver for chatmail relays.
--
-- On delivery of a new message (LMTP), set the empty attribute
-- /private/messagenew on the mailbox it landed in. metadata-dictd turns that
-- into one queued notification per device token of the recipient, and
-- notifierd sends them to the push proxy.
--
-- Mail that the user sent to themself (another device of the same account
-- copying to its own inbox) wakes nobody: the sender already has it.

function dovecot_lua_notify_begin_txn(user)
  return user
end

-- A dict server that restarts (or dies mid-commit) fails one attempt;
-- Dovecot's dict client reconnects on the next, so try a few times before
-- giving up (the error then lands in Dovecot's log).
local SET_ATTEMPTS = 3

local function set_messagenew(box)
  local ok, err
  for _ = 1, SET_ATTEMPTS do
    ok, err = pcall(box.metadata_set, box, "/private/messagenew", "")
    if ok then
      return true
    end
  end
  return false, err
end

function dovecot_lua_notify_event_message_new(user, event)
  if user.username == event.from_address then
    return
  end
  local box = user:mailbox(event.mailbox)
  box:sync()
  local ok, err = set_messagenew(box)
  box:free()
  if not ok then
    error(err)
  end
end

function dovecot_lua_notify_end_txn(ctx, success)
end
