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

function dovecot_lua_notify_event_message_new(user, event)
  if user.username == event.from_address then
    return
  end
  local box = user:mailbox(event.mailbox)
  box:sync()
  box:metadata_set("/private/messagenew", "")
  box:free()
end

function dovecot_lua_notify_end_txn(ctx, success)
end
