// Package dialplan turns a tenant's supervision "dialing rules" into
// decisions: which feature code a supervisor dialed (*90744 → spy on 744),
// which mode an in-call DTMF key selects, and the Asterisk extensions.conf
// snippet that routes those codes into the earpiece Stasis application, with
// the tenants' BLF hints (Render), and the whole generated files of a set of
// tenants with the marker that tells which rendering Asterisk has loaded
// (RenderFiles).
//
// The package is pure: no I/O besides the io.Writer handed to Render, no
// clock, no state, and it imports nothing else from earpiece. Everything in
// it is safe for concurrent use.
//
// The defaults (prefixes *90/*91/*92, DTMF 0/1/2) are the call-supervision
// codes of common hosted PBXs; a tenant may replace them (e.g. *21/*22/*23
// with DTMF 1/2/3 for a customer migrating from a legacy PBX that used those).
package dialplan
