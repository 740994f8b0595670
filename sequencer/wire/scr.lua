--[[
scr.lua: Wireshark/tshark dissectors for the SCR testbed's frames (sequencer/wire/*.py).

What it dissects
  * "scr" (ethertype 0x88B5): the SCR header the sequencer puts in front of every frame it
    sends a core (sequencer/wire/header.py, SCR_HEADER "!BBBBBBBBIQ": magic 0x5C, version,
    flags (0x01 STOP, 0x02 MIGRATE), count, record_size, slot, n_cores, spray, seq, timestamp in ns),
    then a subtree "History (N records)" with one item "Record seq=S" per history record
    (opaque bytes; record i belongs to packet seq - count + i, wrapping at 2^32), then
    the original frame, handed to Wireshark's "eth_withoutfcs" dissector so that its
    Ethernet/IPv4/TCP dissect as usual. A STOP frame carries records and no frame.
  * "scrctl" (ethertype 0x88B6): the controller's spray command (magic "SCRC": epoch, the
    core ids; spray.py) and the heartbeat (magic "SCRH": version, role, counter;
    heartbeat.py), told apart by their 4-byte magic, as the testbed's codecs do.
  * "scrtrailer": the shard strategy's 14-byte trailer (trailer.py: seq u32, timestamp
    u64, magic 0x5CAF) after an unchanged IPv4 frame. It has no ethertype, so a
    post-dissector looks at every IPv4 frame's tail: a trailer is taken to be there when
    the last two bytes are the magic AND the IPv4 packet (its total length) ends at or
    before the last 14 bytes. Preference scrtrailer.detect (default on) turns it off.

Fields (filter names)
  scr.magic scr.version scr.flags scr.flags.stop scr.flags.migrate scr.count scr.record_size scr.slot
  scr.n_cores scr.spray scr.seq scr.ts scr.history scr.record scr.record.seq
  scrctl.magic scrctl.kind ("spray" or "heartbeat") scrctl.epoch scrctl.count scrctl.core
  scrctl.version scrctl.role scrctl.counter
  scrtrailer.seq scrtrailer.ts scrtrailer.magic
  Expert infos: scr.truncated scr.bad_header scr.inner_malformed scrctl.bad_magic
  scrctl.truncated

How to use
  tshark -X lua_script:sequencer/wire/scr.lua -r sequenced.pcap
  tshark -X lua_script:sequencer/wire/scr.lua -r core0.pcap -T fields \
         -e frame.number -e scr.seq -e scr.count -e scr.record.seq -e ip.src
  wireshark -X lua_script:sequencer/wire/scr.lua core0.pcap
  or copy this file into ~/.local/lib/wireshark/plugins/ (Wireshark >= 2.6; older:
  ~/.wireshark/plugins/) to load it always. `python -m sequencer.dissect --lua-path`
  prints this file's absolute path.

Caveats
  * Uses only Wireshark's Lua API: no io, os, require or dofile. Some older Wireshark
    releases' init.lua replaced those with stubs that fail for the superuser; Wireshark
    4.0 (Debian 12) does not. Checked as root there: io, os, require and dofile are all
    present, and `-X lua_script` runs (tshark only warns "Running as user root") because
    init.lua sets run_user_scripts_when_superuser = true. Where a site's init.lua sets it
    to false (or enable_lua = false), tshark skips the script for root, and the scr.*
    fields are unknown ("Some fields aren't valid"): run tshark as a user there.
  * In a shard frame, Wireshark's Ethernet dissector may show the trailer's last 4 bytes
    as an FCS (it guesses); scrtrailer.* shows the whole trailer all the same.
  * The history records are the NF's layout (nfs/*.py record_format), unknown here:
    they show as bytes. sequencer.dissect --record-format decodes them.
  * The shard trailer's test is a heuristic: a padded IPv4 frame whose padding happens to
    end in 0x5C 0xAF passes for a shard frame; VLAN-tagged frames are not looked at.
  * Written for Wireshark 4.0's Lua 5.2 API (Column:fence, register_postdissector).
--]]

-- ---------------------------------------------------------------------------------------
-- SCR header (ethertype 0x88B5)
-- ---------------------------------------------------------------------------------------

local ETH_P_SCR = 0x88B5
local ETH_P_CTL = 0x88B6 -- the spray command and the heartbeat share it
local SCR_MAGIC = 0x5C
local SCR_VERSION = 2
local SCR_HEADER_LEN = 20
local FLAG_STOP = 0x01
local FLAG_MIGRATE = 0x02
local SEQ_MODULUS = 4294967296 -- 2^32: sequence numbers wrap like the header's u32

local scr = Proto("scr", "SCR sequencer header")

local f = {
    magic = ProtoField.uint8("scr.magic", "Magic", base.HEX),
    version = ProtoField.uint8("scr.version", "Version", base.DEC),
    flags = ProtoField.uint8("scr.flags", "Flags", base.HEX),
    stop = ProtoField.bool("scr.flags.stop", "STOP", 8, nil, FLAG_STOP,
                           "End of run: fast-forward the history, no original frame"),
    migrate = ProtoField.bool("scr.flags.migrate", "MIGRATE", 8, nil, FLAG_MIGRATE,
                              "RSS++: buckets moved away from this core, hand them over"),
    count = ProtoField.uint8("scr.count", "History records", base.DEC),
    record_size = ProtoField.uint8("scr.record_size", "Record size", base.DEC),
    slot = ProtoField.uint8("scr.slot", "Core slot", base.DEC),
    n_cores = ProtoField.uint8("scr.n_cores", "Cores", base.DEC),
    spray = ProtoField.uint8("scr.spray", "Cores sprayed over", base.DEC),
    seq = ProtoField.uint32("scr.seq", "Sequence number", base.DEC),
    ts = ProtoField.uint64("scr.ts", "Timestamp (ns)", base.DEC),
    history = ProtoField.none("scr.history", "History"),
    record = ProtoField.bytes("scr.record", "Record"),
    record_seq = ProtoField.uint32("scr.record.seq", "Record's sequence number", base.DEC),
}
scr.fields = f

local e = {
    truncated = ProtoExpert.new("scr.truncated", "SCR frame cut short",
                                expert.group.MALFORMED, expert.severity.ERROR),
    bad_header = ProtoExpert.new("scr.bad_header", "SCR header out of its format",
                                 expert.group.MALFORMED, expert.severity.WARN),
    inner = ProtoExpert.new("scr.inner_malformed", "The original frame is malformed",
                            expert.group.MALFORMED, expert.severity.ERROR),
}
scr.experts = e

-- The inner frame has no FCS (the testbed's veths carry none); "eth" as a fallback for
-- builds without the FCS-less entry point.
local ok, eth = pcall(Dissector.get, "eth_withoutfcs")
if not ok then
    eth = Dissector.get("eth_maybefcs")
end

function scr.dissector(tvb, pinfo, tree)
    local len = tvb:len()
    pinfo.cols.protocol = "SCR"
    local top = tree:add(scr, tvb(0, math.min(len, SCR_HEADER_LEN)))
    if len < SCR_HEADER_LEN then
        top:add_proto_expert_info(e.truncated,
            string.format("%d bytes, the header needs %d", len, SCR_HEADER_LEN))
        pinfo.cols.info = "SCR [truncated header]"
        return len
    end

    local magic, version = tvb(0, 1):uint(), tvb(1, 1):uint()
    local flags, count = tvb(2, 1):uint(), tvb(3, 1):uint()
    local size, slot = tvb(4, 1):uint(), tvb(5, 1):uint()
    local n_cores, spray = tvb(6, 1):uint(), tvb(7, 1):uint()
    local seq = tvb(8, 4):uint()
    local stop = flags % 2 == FLAG_STOP
    local migrate = math.floor(flags / 2) % 2 == 1

    top:add(f.magic, tvb(0, 1))
    top:add(f.version, tvb(1, 1))
    local flag_item = top:add(f.flags, tvb(2, 1))
    flag_item:add(f.stop, tvb(2, 1))
    flag_item:add(f.migrate, tvb(2, 1))
    top:add(f.count, tvb(3, 1))
    top:add(f.record_size, tvb(4, 1))
    top:add(f.slot, tvb(5, 1))
    top:add(f.n_cores, tvb(6, 1))
    top:add(f.spray, tvb(7, 1))
    top:add(f.seq, tvb(8, 4))
    top:add(f.ts, tvb(12, 8))
    top:append_text(string.format(", Seq: %d, Core %d/%d, %d record%s%s%s", seq, slot,
                                  n_cores, count, count == 1 and "" or "s",
                                  stop and ", STOP" or "",
                                  migrate and ", MIGRATE" or ""))
    -- The same checks as header.unpack_header: the frame still dissects, flagged.
    if magic ~= SCR_MAGIC or version ~= SCR_VERSION then
        top:add_proto_expert_info(e.bad_header,
            string.format("magic 0x%02x version %d (expected 0x%02x, %d)", magic, version,
                          SCR_MAGIC, SCR_VERSION))
    end
    if n_cores == 0 or slot >= n_cores or count >= n_cores or spray < 1 or spray > n_cores then
        top:add_proto_expert_info(e.bad_header,
            string.format("slot %d count %d cores %d spray %d", slot, count, n_cores, spray))
    end

    pinfo.cols.info = string.format("SCR%s%s seq=%d core=%d/%d spray=%d records=%dx%dB",
                                    stop and " STOP" or "", migrate and " MIGRATE" or "",
                                    seq, slot, n_cores, spray, count, size)

    -- History: record i is packet seq - count + i's, oldest first.
    local offset = SCR_HEADER_LEN
    local fits = size > 0 and math.min(count, math.floor((len - offset) / size)) or count
    if count > 0 then
        local hist = top:add(f.history, tvb(offset, math.min(count * size, len - offset)))
        hist:set_text(string.format("History (%d record%s)", count, count == 1 and "" or "s"))
        for i = 0, fits - 1 do
            local rec_seq = (seq - count + i) % SEQ_MODULUS
            local range = size > 0 and tvb(offset + i * size, size) or tvb(offset, 0)
            local item = hist:add(f.record, range)
            item:set_text(string.format("Record seq=%d: %s", rec_seq,
                                        size > 0 and tostring(range:bytes()):lower() or ""))
            item:add(f.record_seq, range, rec_seq):set_generated()
        end
        if fits < count then
            hist:add_proto_expert_info(e.truncated,
                string.format("%d records of %d B do not fit in %d bytes", count, size,
                              len - offset))
            return len
        end
    end
    top:set_len(offset + count * size)
    offset = offset + count * size

    -- The original frame: its own dissectors write the columns after ours.
    if offset < len then
        pinfo.cols.info:append(" | ")
        pinfo.cols.info:fence()
        -- A malformed inner frame makes Dissector:call raise a Lua error; caught, so that
        -- the SCR part stays dissected and the frame is flagged, not a script error.
        local inner_ok, err = pcall(Dissector.call, eth, tvb(offset):tvb(), pinfo, tree)
        if not inner_ok then
            top:add_proto_expert_info(e.inner, tostring(err))
        end
        pinfo.cols.protocol = "SCR/" .. tostring(pinfo.cols.protocol)
    end
    return len
end

DissectorTable.get("ethertype"):add(ETH_P_SCR, scr)

-- ---------------------------------------------------------------------------------------
-- Spray command and heartbeat (ethertype 0x88B6, told apart by the magic)
-- ---------------------------------------------------------------------------------------

local scrctl = Proto("scrctl", "SCR control (spray command, heartbeat)")
local ROLES = { [0] = "primary", [1] = "backup", [2] = "core" }

local c = {
    magic = ProtoField.string("scrctl.magic", "Magic"),
    kind = ProtoField.string("scrctl.kind", "Kind"),
    epoch = ProtoField.uint32("scrctl.epoch", "Epoch", base.DEC),
    count = ProtoField.uint8("scrctl.count", "Cores named", base.DEC),
    core = ProtoField.uint8("scrctl.core", "Core", base.DEC),
    version = ProtoField.uint8("scrctl.version", "Version", base.DEC),
    role = ProtoField.uint8("scrctl.role", "Role", base.DEC, ROLES),
    counter = ProtoField.int64("scrctl.counter", "Counter", base.DEC),
}
scrctl.fields = c

local ce = {
    bad_magic = ProtoExpert.new("scrctl.bad_magic", "Neither a spray command nor a heartbeat",
                                expert.group.MALFORMED, expert.severity.WARN),
    truncated = ProtoExpert.new("scrctl.truncated", "SCR control frame cut short",
                                expert.group.MALFORMED, expert.severity.ERROR),
}
scrctl.experts = ce

local SPRAY_LEN, HEARTBEAT_LEN = 9, 14 -- magic + fields, before the core ids / padding

function scrctl.dissector(tvb, pinfo, tree)
    local len = tvb:len()
    pinfo.cols.protocol = "SCR"
    local top = tree:add(scrctl, tvb(0, math.min(len, 4)))
    pinfo.cols.info = "SCR control frame [truncated]" -- until the frame proves whole
    if len < 4 then
        top:add_proto_expert_info(ce.truncated, string.format("%d bytes", len))
        return len
    end
    local magic = tvb(0, 4):string()
    top:add(c.magic, tvb(0, 4))
    if magic == "SCRC" then
        top:add(c.kind, tvb(0, 4), "spray"):set_generated()
        if len < SPRAY_LEN then
            top:add_proto_expert_info(ce.truncated, string.format("%d bytes", len))
            return len
        end
        local n = tvb(8, 1):uint()
        top:add(c.epoch, tvb(4, 4))
        top:add(c.count, tvb(8, 1))
        local cores = {}
        for i = 0, math.min(n, len - SPRAY_LEN) - 1 do
            top:add(c.core, tvb(SPRAY_LEN + i, 1))
            cores[#cores + 1] = tostring(tvb(SPRAY_LEN + i, 1):uint())
        end
        if n > len - SPRAY_LEN then
            top:add_proto_expert_info(ce.truncated, string.format("%d core ids named", n))
        end
        local used = SPRAY_LEN + math.min(n, len - SPRAY_LEN)
        top:set_len(used)
        top:append_text(", Spray command")
        pinfo.cols.info = string.format("SCR spray command epoch=%d cores=%s",
                                        tvb(4, 4):uint(), table.concat(cores, ","))
        return used -- the rest is the Ethernet padding
    elseif magic == "SCRH" then
        top:add(c.kind, tvb(0, 4), "heartbeat"):set_generated()
        if len < HEARTBEAT_LEN then
            top:add_proto_expert_info(ce.truncated, string.format("%d bytes", len))
            return len
        end
        local role = tvb(5, 1):uint()
        top:add(c.version, tvb(4, 1))
        top:add(c.role, tvb(5, 1))
        top:add(c.counter, tvb(6, 8))
        top:set_len(HEARTBEAT_LEN)
        top:append_text(", Heartbeat")
        pinfo.cols.info = string.format("SCR heartbeat role=%s counter=%s",
                                        ROLES[role] or tostring(role),
                                        tostring(tvb(6, 8):int64()))
        return HEARTBEAT_LEN
    end
    top:add_proto_expert_info(ce.bad_magic, "magic " .. tostring(tvb(0, 4):bytes()))
    pinfo.cols.info = "SCR control frame, unknown magic"
    return len
end

DissectorTable.get("ethertype"):add(ETH_P_CTL, scrctl)

-- ---------------------------------------------------------------------------------------
-- Shard trailer: a post-dissector on the tail of IPv4 frames
-- ---------------------------------------------------------------------------------------

local TRAILER_LEN = 14
local TRAILER_MAGIC = 0x5CAF
local ETH_LEN = 14

local scrtrailer = Proto("scrtrailer", "SCR shard trailer")
local t = {
    seq = ProtoField.uint32("scrtrailer.seq", "Sequence number", base.DEC),
    ts = ProtoField.uint64("scrtrailer.ts", "Timestamp (ns)", base.DEC),
    magic = ProtoField.uint16("scrtrailer.magic", "Magic", base.HEX),
}
scrtrailer.fields = t
scrtrailer.prefs.detect = Pref.bool("Detect shard trailers", true,
    "Look for the shard strategy's 14-byte trailer at the end of every IPv4 frame")

function scrtrailer.dissector(tvb, pinfo, tree)
    if not scrtrailer.prefs.detect then
        return
    end
    local len = tvb:len()
    -- An untagged Ethernet/IPv4 frame, long enough for a header and a trailer.
    if len < ETH_LEN + 20 + TRAILER_LEN or tvb(12, 2):uint() ~= 0x0800
            or math.floor(tvb(ETH_LEN, 1):uint() / 16) ~= 4 then
        return
    end
    if tvb(len - 2, 2):uint() ~= TRAILER_MAGIC then
        return
    end
    -- The IPv4 packet must end before the trailer: otherwise the magic is its own bytes.
    if ETH_LEN + tvb(ETH_LEN + 2, 2):uint() > len - TRAILER_LEN then
        return
    end
    local at = len - TRAILER_LEN
    local seq = tvb(at, 4):uint()
    local top = tree:add(scrtrailer, tvb(at, TRAILER_LEN))
    top:add(t.seq, tvb(at, 4))
    top:add(t.ts, tvb(at + 4, 8))
    top:add(t.magic, tvb(at + 12, 2))
    top:append_text(string.format(", Seq: %d", seq))
    pinfo.cols.info:append(string.format(" [SCR trailer seq=%d]", seq))
end

register_postdissector(scrtrailer)
