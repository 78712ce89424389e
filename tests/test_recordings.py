from wand_assets.data.recordings import (
    ParseReport,
    parse_file,
    parse_tree,
    person_of,
    recordings_per_class,
)

CAPTURE = (
    b"Script started on Thu Jul 25 11:26:08 2019\r\n"
    b"\x1b[?1034hbash-3.2$  -\x08\x1b[K\x08\x1b[Kscreen ${DEVICENAME} 115200\r\n"
    b"\r\n"
    b" -,-,-\r\n"
    b"818.0,-217.0,581.0\r\n"
    b"\x1b[0m819.0,-216.0,580.0\r\n"
    b"-,-,-\r\n"
    b"1.0,2.0,3.0\r\n"
    b"garbage,line\r\n"
    b" \x08 \x08-4.5,5.0,6.0\r\n"
    b"Really kill this window [y/n]\r\n"
)


def test_capture_noise_is_stripped_and_the_last_recording_kept():
    report = ParseReport()
    recs = parse_file(CAPTURE, "wing", "wing/output_wing_hyw.txt", report)
    assert [r.samples.tolist() for r in recs] == [
        [[818.0, -217.0, 581.0], [819.0, -216.0, 580.0]],
        [[1.0, 2.0, 3.0], [-4.5, 5.0, 6.0]],
    ]
    assert all(r.person == "hyw" for r in recs)


def test_skipped_lines_are_counted_with_examples():
    report = ParseReport()
    parse_file(CAPTURE, "wing", "wing/output_wing_x.txt", report)
    assert report.skipped_lines == 4  # script header, screen command, garbage, "Really kill"
    assert any("garbage,line" in e for e in report.skipped_examples)
    assert report.skipped_by_file["wing/output_wing_x.txt"] == 4


def test_unattributed_negatives_keep_their_file_tag():
    assert person_of("negative", "output_negative_3.txt") == "negative_3"
    assert person_of("negative", "output_negative_ccw_1.txt") == "negative_ccw_1"
    assert person_of("negative", "output_negative_jiangyh.txt") == "jiangyh"


def test_real_dataset_recording_counts_match_provenance(dataset_dir):
    recs, report = parse_tree(dataset_dir)
    # PROVENANCE.md counts non-empty segments between separators, including each file's last one.
    assert recordings_per_class(recs) == {"wing": 223, "ring": 218, "slope": 228, "negative": 63}
    assert sum(len(r.samples) for r in recs) == 65_373
    assert report.files == 38
