//! A realistic demo catalog: deterministic (same seed, same books), varied titles, authors,
//! tags, descriptions, prices and stock, with valid unique ISBNs. For demos and benchmarks.

use anyhow::Result;
use bookshelf_domain::{isbn, NewBook};
use bookshelf_storage::DbPool;

/// splitmix64: tiny, fast, good enough for demo data, and reproducible without a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const ADJECTIVES: &[&str] = &[
    "Silent",
    "Crimson",
    "Hidden",
    "Last",
    "Forgotten",
    "Burning",
    "Glass",
    "Winter",
    "Hollow",
    "Golden",
    "Broken",
    "Distant",
    "Secret",
    "Wild",
    "Quiet",
    "Iron",
    "Midnight",
    "Shattered",
    "Endless",
    "Little",
    "Northern",
    "Drowned",
    "Electric",
    "Paper",
    "Velvet",
    "Bitter",
    "Lonely",
    "Brave",
    "Wandering",
    "Sleeping",
];
const NOUNS: &[&str] = &[
    "River",
    "Garden",
    "Empire",
    "Lighthouse",
    "Orchard",
    "Kingdom",
    "Cartographer",
    "Harbor",
    "Library",
    "Mountain",
    "Clockmaker",
    "Forest",
    "Daughter",
    "Machine",
    "Island",
    "Winter",
    "Storm",
    "Archive",
    "Station",
    "Voyage",
    "Alchemist",
    "Citadel",
    "Desert",
    "Mirror",
    "Symphony",
    "Atlas",
    "Labyrinth",
    "Comet",
    "Tide",
    "Lantern",
];
const PLACES: &[&str] = &[
    "Prague",
    "the Andes",
    "Kyoto",
    "the North Sea",
    "Lagos",
    "Patagonia",
    "Samarkand",
    "Lisbon",
    "the Steppe",
    "Mars",
    "Venice",
    "the Outer Rim",
    "Reykjavik",
    "Marrakesh",
    "the Deep",
    "Babylon",
];
const FIRST: &[&str] = &[
    "Ada",
    "Kwame",
    "Mei",
    "Lars",
    "Amara",
    "Diego",
    "Ingrid",
    "Tomasz",
    "Yuki",
    "Farah",
    "Elena",
    "Oluwaseun",
    "Nikolai",
    "Priya",
    "Mateo",
    "Sofia",
    "Hamid",
    "Aiko",
    "Jonas",
    "Chiara",
    "Rafael",
    "Leila",
    "Emeka",
    "Astrid",
];
const LAST: &[&str] = &[
    "Okafor",
    "Lindqvist",
    "Tanaka",
    "Moreau",
    "Novak",
    "Haddad",
    "Castillo",
    "Kowalski",
    "Nakamura",
    "Adeyemi",
    "Petrov",
    "Sharma",
    "Rossi",
    "Fischer",
    "Mendes",
    "Oduya",
    "Larsen",
    "Ivanova",
    "Brennan",
    "Sato",
];
const TAGS: &[&str] = &[
    "fiction",
    "science-fiction",
    "fantasy",
    "mystery",
    "thriller",
    "romance",
    "history",
    "biography",
    "poetry",
    "philosophy",
    "travel",
    "cooking",
    "science",
    "classic",
    "young-adult",
    "horror",
    "essays",
    "memoir",
    "adventure",
    "politics",
    "art",
    "nature",
    "economics",
    "psychology",
    "graphic-novel",
    "short-stories",
];
const OPENINGS: &[&str] = &[
    "A sweeping story of",
    "An intimate portrait of",
    "A darkly funny tale about",
    "A meticulous history of",
    "A lyrical meditation on",
    "A page-turning account of",
    "A bold reimagining of",
    "A quiet novel about",
];
const SUBJECTS: &[&str] = &[
    "two sisters who inherit a failing vineyard",
    "a cartographer mapping a country that keeps changing",
    "the engineers who built the first transatlantic cable",
    "a detective who cannot remember faces",
    "a generation ship on the edge of mutiny",
    "love and betrayal in a border town",
    "the last speakers of a dying language",
    "a chef rebuilding her life after a fire",
    "an orphan apprenticed to a clockmaker",
    "the economics of everyday life",
    "a heist at the opera",
    "migratory birds and the people who follow them",
];

fn title(r: &mut Rng) -> String {
    match r.below(6) {
        0 => format!("The {} {}", r.pick(ADJECTIVES), r.pick(NOUNS)),
        1 => format!("{} of {}", r.pick(NOUNS), r.pick(PLACES)),
        2 => format!("The {}'s {}", r.pick(NOUNS), r.pick(NOUNS)),
        3 => format!("A {} in {}", r.pick(NOUNS), r.pick(PLACES)),
        4 => format!("{} {}", r.pick(ADJECTIVES), r.pick(NOUNS)),
        _ => format!(
            "The {} {} of {}",
            r.pick(ADJECTIVES),
            r.pick(NOUNS),
            r.pick(PLACES)
        ),
    }
}

fn book(r: &mut Rng, n: u64, isbn_base: u64) -> NewBook {
    let authors = (0..1 + usize::from(r.below(5) == 0))
        .map(|_| format!("{} {}", r.pick(FIRST), r.pick(LAST)))
        .collect();
    let mut tags: Vec<String> = (0..1 + r.below(3)).map(|_| r.pick(TAGS).to_string()).collect();
    tags.sort();
    tags.dedup();
    let description = format!(
        "{} {}. Set in {}, it follows {} through {}.",
        r.pick(OPENINGS),
        r.pick(SUBJECTS),
        r.pick(PLACES),
        r.pick(FIRST),
        r.pick(&[
            "one long summer",
            "three wars",
            "a single night",
            "forty years",
            "the collapse of an empire"
        ]),
    );
    NewBook {
        title: title(r),
        authors,
        isbn: Some(isbn::complete(&format!(
            "979{:09}",
            (isbn_base + n) % 1_000_000_000
        ))),
        published_year: Some(1850 + r.below(177) as i32),
        // Most books say how long they are; some do not, as in any real catalog.
        page_count: (r.below(10) > 0).then(|| 80 + r.below(900) as i32),
        description: Some(description),
        tags,
        price_cents: Some(299 + 50 * r.below(95) as i64),
        stock: r.below(60) as i32,
    }
}

/// Adds `count` books; returns how many were inserted (ISBN collisions with existing
/// books are skipped, so seeding twice is harmless).
pub async fn seed_books(pool: &DbPool, count: usize, seed: u64) -> Result<u64> {
    use futures::{StreamExt, TryStreamExt};
    let mut r = Rng(seed);
    // Start ISBNs where this seed's run puts them, so repeated runs with other seeds add more.
    let isbn_base = seed.wrapping_mul(1_000_003) % 900_000_000;
    // The books are made here in order (the same seed, the same books); the batches go in
    // over a few connections at once, since the server's index upkeep is the cost.
    let batches = (0..count).step_by(1000).map(move |start| {
        let batch = (count - start).min(1000);
        (0..batch)
            .map(|i| book(&mut r, (start + i) as u64, isbn_base))
            .collect::<Vec<NewBook>>()
    });
    let inserted: u64 = futures::stream::iter(batches)
        .map(|books| async move { bookshelf_storage::books::insert_many(pool, &books).await })
        .buffer_unordered(SEED_CONNECTIONS)
        .try_fold(0, |sum, n| async move { Ok(sum + n) })
        .await?;
    // Fresh statistics, as after any bulk load: without them the planner guesses the
    // catalog's selectivity and may scan every row for a search.
    bookshelf_storage::books::analyze(pool).await?;
    Ok(inserted)
}

/// Batches of books written at once by `seed_books`.
const SEED_CONNECTIONS: usize = 4;

/// The password of every seeded reader (`seed --readers N`): demo data, not an account.
pub const READER_PASSWORD: &str = "reader-password";

/// The email of seeded reader `i` (from 1).
pub fn reader_email(i: usize) -> String {
    format!("reader{i}@seed.bookshelf.local")
}

/// Readers with a year of history each: 5,000 finished reads (one per catalog book, so the
/// catalog must hold that many; `seed_readers` adds books when it does not) and 20,000
/// ended sessions, all in the current UTC year. An existing reader is left as it is.
pub async fn seed_readers(
    pool: &DbPool,
    count: usize,
) -> Result<Vec<(String, bookshelf_storage::reading::History)>> {
    const READS: i64 = 5_000;
    const SESSIONS_PER_READ: i32 = 4;
    let books = bookshelf_storage::books::count(pool).await?;
    if books < READS {
        seed_books(pool, (READS - books) as usize, books as u64 + 1).await?;
    }
    let now = chrono::Utc::now();
    let (from, _) = bookshelf_domain::reading::year_bounds(chrono::Datelike::year(&now));
    let hash = bookshelf_auth::password::hash(READER_PASSWORD);
    let mut made = Vec::new();
    for i in 1..=count {
        let email = reader_email(i);
        let display_name = format!("Reader {i}");
        let new = bookshelf_storage::NewUser {
            email: &email,
            password_hash: &hash,
            display_name: &display_name,
            role: bookshelf_domain::Role::User,
        };
        let user = match bookshelf_storage::users::insert(pool, new).await {
            Ok(user) => user,
            Err(bookshelf_storage::StorageError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let history =
            bookshelf_storage::reading::seed_history(pool, user.id, READS, SESSIONS_PER_READ, from, now)
                .await?;
        made.push((email, history));
    }
    Ok(made)
}

/// A reader with `count` followers (`follower{n}@seed.bookshelf.local`, password
/// `READER_PASSWORD`) and a public library: what the fan-out benchmark shelves books as.
/// Returns the star's email and the follower the fan-out reaches last.
pub async fn seed_star(pool: &DbPool, count: i32) -> Result<(String, Option<String>)> {
    let email = "star@seed.bookshelf.local".to_string();
    let hash = bookshelf_auth::password::hash(READER_PASSWORD);
    let new = bookshelf_storage::NewUser {
        email: &email,
        password_hash: &hash,
        display_name: "Star",
        role: bookshelf_domain::Role::User,
    };
    let star = match bookshelf_storage::users::insert(pool, new).await {
        Ok(user) => user.id,
        Err(bookshelf_storage::StorageError::Conflict(_)) => {
            bookshelf_storage::users::find_credentials(pool, &email)
                .await?
                .map(|c| c.user_id)
                .ok_or_else(|| anyhow::anyhow!("{email} vanished"))?
        }
        Err(e) => return Err(e.into()),
    };
    let public = bookshelf_storage::UserPatch {
        library_visibility: Some(bookshelf_domain::Visibility::Public),
        ..Default::default()
    };
    bookshelf_storage::users::update_profile(pool, star, public).await?;
    let last =
        bookshelf_storage::follows::seed_followers(pool, star, count, "seed.bookshelf.local", &hash).await?;
    Ok((email, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn books_are_varied_valid_and_reproducible() {
        let mut a = Rng(7);
        let mut b = Rng(7);
        let first: Vec<NewBook> = (0..500).map(|i| book(&mut a, i, 0)).collect();
        let again: Vec<NewBook> = (0..500).map(|i| book(&mut b, i, 0)).collect();
        assert_eq!(
            first.iter().map(|b| &b.title).collect::<Vec<_>>(),
            again.iter().map(|b| &b.title).collect::<Vec<_>>()
        );
        let titles: std::collections::HashSet<&String> = first.iter().map(|b| &b.title).collect();
        assert!(titles.len() > 300, "{} distinct titles", titles.len());
        let isbns: std::collections::HashSet<&str> = first.iter().filter_map(|b| b.isbn.as_deref()).collect();
        assert_eq!(isbns.len(), 500);
        for b in &first {
            let code = b.isbn.as_deref().unwrap();
            assert_eq!(isbn::normalize(code).as_deref(), Ok(code));
            assert!(!b.tags.is_empty() && b.tags.len() <= 3);
            assert!(b.price_cents.is_some_and(|p| p >= 299) && b.stock >= 0);
        }
    }
}
