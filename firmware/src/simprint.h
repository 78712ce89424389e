// Springbok's log channel: the custom-3 "simprint" instruction, which Renode's
// SpringbokRiscV32 CPU writes to the Renode log as `simprint: "<text>", N`.

#ifndef WAND_SIMPRINT_H_
#define WAND_SIMPRINT_H_

// Writes |text| as one simprint line per '\n'-terminated line (the newline
// itself is dropped: Renode's log already ends every entry).
void wand_simprint_write(const char* text);

#endif  // WAND_SIMPRINT_H_
