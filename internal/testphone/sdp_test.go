package testphone

import (
	"net/netip"
	"testing"
)

// asteriskOffer is the shape of an offer from Asterisk 22's chan_pjsip (ulaw only).
const asteriskOffer = "v=0\r\n" +
	"o=- 1849170338 1849170338 IN IP4 127.0.0.1\r\n" +
	"s=Asterisk\r\n" +
	"c=IN IP4 127.0.0.1\r\n" +
	"t=0 0\r\n" +
	"m=audio 10012 RTP/AVP 0 101\r\n" +
	"a=rtpmap:0 PCMU/8000\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\n" +
	"a=fmtp:101 0-16\r\n" +
	"a=ptime:20\r\n" +
	"a=maxptime:140\r\n" +
	"a=sendrecv\r\n"

func TestParseSDP(t *testing.T) {
	a, err := parseSDP([]byte(asteriskOffer))
	if err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddrPort("127.0.0.1:10012")
	if a.Addr != want || a.EventPT != 101 || a.Direction != "sendrecv" || a.PTime != 20 || !a.hasFormat(0) {
		t.Errorf("parsed %+v", a)
	}

	// Media-level c= wins; a second stream's attributes are ignored; session-level direction.
	b := "v=0\nc=IN IP4 10.0.0.1\na=sendonly\nm=audio 4000 RTP/AVP 8 0 96\nc=IN IP4 127.0.0.2\n" +
		"a=rtpmap:96 telephone-event/8000\nm=video 5000 RTP/AVP 97\na=rtpmap:97 telephone-event/8000\na=inactive\n"
	a, err = parseSDP([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	if a.Addr != netip.MustParseAddrPort("127.0.0.2:4000") || a.EventPT != 96 || a.Direction != "sendonly" {
		t.Errorf("parsed %+v", a)
	}

	for _, bad := range []string{
		"",
		"v=0\nc=IN IP4 127.0.0.1\nm=video 4000 RTP/AVP 0\n",
		"v=0\nc=IN IP4 127.0.0.1\nm=audio 0 RTP/AVP 0\n",
		"v=0\nm=audio 4000 RTP/AVP 0\n",
		"v=0\nc=IN IP4 nonsense\nm=audio 4000 RTP/AVP 0\n",
		"v=0\nc=IN IP4 127.0.0.1\nm=audio 4000 RTP/AVP x\n",
	} {
		if a, err := parseSDP([]byte(bad)); err == nil {
			t.Errorf("parseSDP(%q) = %+v, want error", bad, a)
		}
	}
}

func TestBuildSDPRoundTrip(t *testing.T) {
	addr := netip.MustParseAddrPort("127.0.0.1:40000")
	for _, pt := range []int{101, 96, -1} {
		a, err := parseSDP(buildSDP(1, 1, addr, pt, "recvonly"))
		if err != nil {
			t.Fatal(err)
		}
		if a.Addr != addr || a.EventPT != pt || a.Direction != "recvonly" || !a.hasFormat(0) {
			t.Errorf("pt %d: round trip %+v", pt, a)
		}
	}
}

func FuzzParseSDP(f *testing.F) {
	f.Add([]byte(asteriskOffer))
	f.Add(buildSDP(7, 7, netip.MustParseAddrPort("127.0.0.1:1"), 101, "sendrecv"))
	f.Add([]byte("m=audio 1/2 RTP/AVP 0\nc=IN IP6 ::1/64\na=rtpmap:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseSDP(b)
		if err != nil {
			return
		}
		if !a.Addr.IsValid() || a.Addr.Port() == 0 {
			t.Fatalf("accepted without a usable address: %+v", a)
		}
		if a.EventPT >= 0 && !a.hasFormat(a.EventPT) {
			t.Fatalf("event PT %d not among formats %v", a.EventPT, a.Formats)
		}
	})
}
