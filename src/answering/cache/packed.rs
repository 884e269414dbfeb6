//! An answer as a cache entry keeps it: its records in DNS wire form, one
//! buffer for the three sections, decoded again on a hit.
//!
//! hickory's in-memory [`Record`] is 280 bytes whatever it holds (an A
//! record's data is 4 of them); in wire form, with the owner names
//! compressed against each other, a cached A or SOA answer takes 30–90
//! bytes. An entry keeping `Vec<Record>` made a cached answer cost more
//! memory than Unbound's; decoding on a hit costs about what cloning the
//! records did, since a hit hands out its own copy either way.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

use crate::dns64::answer::Answer;

/// An [`Answer`] in wire form.
#[derive(Debug)]
pub(super) struct PackedAnswer {
    response_code: ResponseCode,
    authentic_data: bool,
    authoritative: bool,
    /// Records in the answer, authority and additional sections.
    counts: [u16; 3],
    /// The records, one after the other, owner names compressed.
    wire: Box<[u8]>,
}

impl PackedAnswer {
    /// `answer` in wire form; `None` if a record cannot be encoded (it is
    /// then not cached).
    pub(super) fn pack(answer: &Answer) -> Option<Self> {
        let mut wire = Vec::with_capacity(128);
        let mut encoder = BinEncoder::new(&mut wire);
        let mut counts = [0u16; 3];
        let sections = [&answer.answers, &answer.authorities, &answer.additionals];
        for (count, section) in counts.iter_mut().zip(sections) {
            *count = u16::try_from(section.len()).ok()?;
            for record in section {
                record.emit(&mut encoder).ok()?;
            }
        }
        Some(Self {
            response_code: answer.response_code,
            authentic_data: answer.authentic_data,
            authoritative: answer.authoritative,
            counts,
            wire: wire.into_boxed_slice(),
        })
    }

    /// The answer again; `None` if the wire form does not decode (it
    /// always should: it was encoded by [`Self::pack`]).
    pub(super) fn unpack(&self) -> Option<Answer> {
        let mut decoder = BinDecoder::new(&self.wire);
        let mut read = |count: u16| -> Option<Vec<Record>> {
            (0..count)
                .map(|_| Record::read(&mut decoder).ok())
                .collect()
        };
        let answers = read(self.counts[0])?;
        let authorities = read(self.counts[1])?;
        let additionals = read(self.counts[2])?;
        let mut answer = Answer::empty(self.response_code);
        answer.authentic_data = self.authentic_data;
        answer.authoritative = self.authoritative;
        answer.answers = answers;
        answer.authorities = authorities;
        answer.additionals = additionals;
        Some(answer)
    }

    /// The bytes the wire form takes on the heap.
    pub(super) fn heap_bytes(&self) -> usize {
        self.wire.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, TXT};
    use hickory_proto::rr::{Name, RData};

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[test]
    fn an_answer_comes_back_as_it_went_in() {
        let mut answer = Answer::empty(ResponseCode::NoError);
        answer.authentic_data = true;
        answer.answers = vec![
            Record::from_rdata(
                name("WWW.Example.COM."),
                300,
                RData::CNAME(CNAME(name("web.example.com."))),
            ),
            Record::from_rdata(name("web.example.com."), 60, RData::A(A::new(192, 0, 2, 1))),
            Record::from_rdata(
                name("web.example.com."),
                60,
                RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            ),
            Record::from_rdata(
                name("web.example.com."),
                60,
                RData::TXT(TXT::new(vec!["a text".into()])),
            ),
        ];
        answer.authorities = vec![Record::from_rdata(
            name("example.com."),
            3600,
            RData::SOA(SOA::new(
                name("ns.example.com."),
                name("hostmaster.example.com."),
                7,
                3600,
                900,
                604_800,
                60,
            )),
        )];
        answer.additionals = vec![Record::from_rdata(
            name("ns.example.com."),
            3600,
            RData::A(A::new(192, 0, 2, 53)),
        )];
        let packed = PackedAnswer::pack(&answer).unwrap();
        assert!(packed.heap_bytes() < 200, "{} bytes", packed.heap_bytes());
        assert_eq!(packed.unpack().unwrap(), answer);
        // The owner's letter case stays as the upstream sent it.
        assert_eq!(
            packed.unpack().unwrap().answers[0].name.to_string(),
            "WWW.Example.COM."
        );

        let nxdomain = Answer::empty(ResponseCode::NXDomain);
        let packed = PackedAnswer::pack(&nxdomain).unwrap();
        assert_eq!(packed.unpack().unwrap(), nxdomain);
    }
}
