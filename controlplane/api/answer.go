package api

import "slices"

// The answer file of an installer-format os image (issue 14): a vendor
// installer booted directly fetches it from the boot server at
// GET /answer/{order}?token=TOKEN, the URL its command line template
// names as {{.AnswerURL}}. The boot server renders it per order from the
// image's template (package ips/answer).

// RoleAnswer is the file role of an installer image's answer-file
// template. An installer-format image carries at most one, and that file
// names its flavor in ImageFile.Flavor.
const RoleAnswer = "answer"

// Answer-file flavors (ImageFile.Flavor of a file of role answer).
const (
	FlavorPreseed     = "preseed"     // Debian's debian-installer
	FlavorKickstart   = "kickstart"   // Anaconda (RHEL, Fedora, clones)
	FlavorAutoinstall = "autoinstall" // Ubuntu's subiquity (cloud-init user-data)
)

// AnswerFlavors lists the flavors.
var AnswerFlavors = []string{FlavorPreseed, FlavorKickstart, FlavorAutoinstall}

// ValidAnswerFlavor reports whether f is one of AnswerFlavors.
func ValidAnswerFlavor(f string) bool { return slices.Contains(AnswerFlavors, f) }
