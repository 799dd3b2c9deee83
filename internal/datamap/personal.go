package datamap

import (
	"slices"
	"strings"
)

// PersonalColumn is a column whose name or type suggests it holds
// personal data, and why (discover reads names and types only, never
// values).
type PersonalColumn struct {
	Column string
	Type   string // as PostgreSQL writes it: text, inet, character varying(80), …
	Why    string // "an email address", "a phone number", …
}

// Why a column looks personal.
const (
	whyEmail    = "an email address"
	whyIP       = "an IP address"
	whyPhone    = "a phone number"
	whyBirth    = "a date of birth"
	whyPostal   = "a postal address"
	whyName     = "a person's name"
	whyText     = "free text, which may name or describe the person"
	whyIDNumber = "a government or bank identifier"
	whySecret   = "a secret (exclude it from access bundles)"
	whyLocation = "a location"
	whySpecial  = "special-category data (GDPR Art. 9)"
)

var (
	phoneWords    = []string{"phone", "telephone", "tel", "mobile", "cell", "fax", "msisdn"}
	birthWords    = []string{"dob", "birthday", "birthdate"}
	postalWords   = []string{"address", "addr", "street", "city", "town", "postcode", "postal", "zip", "zipcode", "line1", "line2", "house"}
	nameWords     = []string{"name", "surname", "firstname", "lastname", "fullname", "forename", "username", "nickname", "displayname"}
	textWords     = []string{"note", "notes", "comment", "comments", "body", "message", "messages", "bio", "biography", "description", "about", "remarks", "feedback", "memo"}
	idNumberWords = []string{"ssn", "passport", "iban", "nin", "national", "tin", "sin", "nhs"}
	secretWords   = []string{"password", "passwd", "pwd", "secret"}
	locationWords = []string{"latitude", "longitude", "lat", "lng", "lon", "geo", "geolocation", "location"}
	specialWords  = []string{"gender", "sex", "ethnicity", "religion", "health", "diagnosis", "disability", "orientation"}
	// objectWords next to "name" say the name is a thing's, not a person's.
	objectWords = []string{"file", "product", "project", "book", "company", "host", "domain", "brand", "item", "category",
		"tag", "event", "type", "kind", "group", "team", "org", "organization", "organisation", "list", "plan", "bucket",
		"table", "column", "class", "model", "app", "service", "job", "queue", "schema", "key", "role", "country", "city",
		"street", "shop", "store", "site", "page", "template", "campaign", "feature", "field", "source", "image",
		"attachment", "document", "doc", "folder", "branch", "repo", "package", "channel", "room", "course", "board"}
	// notValueWords end the names of columns that hold no personal value
	// themselves: references, counts, timestamps, flags.
	notValueWords = []string{"id", "ids", "at", "count", "on", "verified", "confirmed", "enabled", "consent", "opt", "optin", "type", "kind", "status"}
)

func hasAny(tokens, words []string) bool {
	return slices.ContainsFunc(tokens, func(t string) bool { return slices.Contains(words, t) })
}

// classify says why a column looks personal, or "" if it does not.
// reached tells whether its table holds the person's rows, where a bare
// "name" column is taken for the person's.
func classify(c catColumn, reached bool) string {
	name := strings.ToLower(c.name)
	tokens := strings.FieldsFunc(name, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') })
	family := typeFamily(c.udt)
	switch c.udt {
	case "inet", "cidr", "macaddr", "macaddr8":
		return whyIP
	case "bool":
		return ""
	}
	textual := family == "text"
	switch {
	case hasAny(tokens, secretWords) && textual:
		return whySecret
	case hasAny(tokens, idNumberWords) && (textual || family == "integer"):
		return whyIDNumber
	}
	if len(tokens) > 0 && slices.Contains(notValueWords, tokens[len(tokens)-1]) {
		return ""
	}
	dated := family == "date" || strings.HasPrefix(family, "timestamp")
	switch {
	case !textual && !dated && family != "integer" && family != "point":
		return ""
	case (strings.Contains(name, "mail") || strings.Contains(c.domain, "mail")) && textual:
		return whyEmail
	case (hasAny(tokens, []string{"ip", "ipaddr", "ipaddress"}) || strings.Contains(name, "remote_addr")) && textual:
		return whyIP
	case hasAny(tokens, phoneWords) && (textual || family == "integer"):
		return whyPhone
	case (strings.Contains(name, "birth") || hasAny(tokens, birthWords)) && (dated || textual):
		return whyBirth
	case hasAny(tokens, postalWords) && textual:
		return whyPostal
	case hasAny(tokens, nameWords) && textual && !hasAny(tokens, objectWords) && (len(tokens) > 1 || name != "name" || reached):
		return whyName
	case hasAny(tokens, textWords) && textual:
		return whyText
	case hasAny(tokens, locationWords) && (family == "point" || family == "integer" || textual):
		return whyLocation
	case hasAny(tokens, specialWords) && textual:
		return whySpecial
	}
	return ""
}

// emailKeyColumn is the column by which a table without a way to the
// person may be matched by email: one named like an email address (email,
// contact_email, mail), else an "address" column in a table with no other
// postal columns (a newsletter list keyed by the address); text only.
func emailKeyColumn(t *catTable) string {
	if c := emailColumn(t); c != "" {
		return c
	}
	var candidate string
	for _, c := range t.columns {
		tokens := strings.Split(c.name, "_")
		switch {
		case typeFamily(c.udt) != "text" || !expressible(c.name):
		case hasAny(tokens, []string{"street", "city", "town", "postcode", "postal", "zip", "zipcode", "line1", "line2"}):
			return "" // a postal address
		case c.name == "address" || (strings.HasSuffix(c.name, "_address") &&
			!hasAny(tokens, []string{"ip", "mac", "home", "billing", "shipping", "delivery", "street", "postal", "wallet"})):
			if candidate == "" {
				candidate = c.name
			}
		}
	}
	return candidate
}

// emailColumn is a table's column named like an email address: "email"
// first, then one containing "email", then one containing "mail"; text
// only, never a flag or a timestamp.
func emailColumn(t *catTable) string {
	best, rank := "", 0
	for _, c := range t.columns {
		tokens := strings.Split(c.name, "_")
		if typeFamily(c.udt) != "text" || !expressible(c.name) || slices.Contains(notValueWords, tokens[len(tokens)-1]) {
			continue
		}
		r := 0
		switch {
		case c.name == "email":
			r = 3
		case strings.Contains(c.name, "email") || strings.Contains(c.domain, "email"):
			r = 2
		case strings.Contains(c.name, "mail") || strings.Contains(c.domain, "mail"):
			r = 1
		}
		if r > rank {
			best, rank = c.name, r
		}
	}
	return best
}
