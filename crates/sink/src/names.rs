//! File names numbered once each: what the sinks note of the rows they write to find a
//! superseded version's rows again (`_source_file`, where rows come file after file).

use std::collections::HashMap;

/// Each name met gets the next number; a name met again, its own.
#[derive(Debug, Default)]
pub(crate) struct FileNames {
    names: Vec<Box<str>>,
    numbers: HashMap<Box<str>, u32>,
    /// The last name numbered: rows come file after file, so most names are the last one.
    last: Option<u32>,
}

impl FileNames {
    /// `name`'s number.
    pub(crate) fn number(&mut self, name: &str) -> u32 {
        if let Some(last) = self.last
            && *self.names[last as usize] == *name
        {
            return last;
        }
        let number = match self.numbers.get(name) {
            Some(&number) => number,
            None => {
                let number = self.names.len() as u32;
                self.names.push(name.into());
                self.numbers.insert(name.into(), number);
                number
            }
        };
        self.last = Some(number);
        number
    }

    /// The name numbered `number`.
    pub(crate) fn name(&self, number: u32) -> &str {
        &self.names[number as usize]
    }

    /// How many names.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// Every name, in the order of their numbers.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_the_number_they_first_got() {
        let mut names = FileNames::default();
        let numbers: Vec<u32> = ["a", "a", "b", "a", "c", "b"]
            .iter()
            .map(|n| names.number(n))
            .collect();
        assert_eq!(numbers, [0, 0, 1, 0, 2, 1]);
        assert_eq!(names.name(2), "c");
        assert_eq!(names.iter().collect::<Vec<_>>(), ["a", "b", "c"]);
    }
}
